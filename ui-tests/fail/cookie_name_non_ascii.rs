use tessera::SessionData;

#[derive(SessionData, Default)]
#[session(name = "séance")]
struct Visit {
    views: u64,
}

fn main() {}

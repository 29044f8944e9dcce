use tessera::SessionData;

#[derive(SessionData, Default)]
#[session(name = "")]
struct Visit {
    views: u64,
}

fn main() {}

use tessera::SessionData;

#[derive(SessionData, Default)]
#[session(name = true)]
struct Visit {
    views: u64,
}

fn main() {}

use tessera::SessionData;

#[derive(SessionData, Default)]
#[session(name = "my sid")]
struct Visit {
    views: u64,
}

fn main() {}

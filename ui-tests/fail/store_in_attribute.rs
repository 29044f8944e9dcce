use tessera::SessionData;

#[derive(SessionData, Default)]
#[session(store = MemoryStore)]
struct Visit {
    views: u64,
}

fn main() {}

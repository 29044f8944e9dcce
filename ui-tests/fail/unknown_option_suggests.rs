use tessera::SessionData;

#[derive(SessionData, Default)]
#[session(rollin)]
struct Visit {
    views: u64,
}

fn main() {}

use tessera::SessionData;

#[derive(SessionData, Default)]
#[session(frobnicate = 1)]
struct Visit {
    views: u64,
}

fn main() {}

use tessera::SessionData;

#[derive(SessionData, Default)]
#[session(rolling)]
#[session(rolling = false)]
struct Visit {
    views: u64,
}

fn main() {}

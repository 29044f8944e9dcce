use tessera::SessionData;

#[derive(SessionData)]
struct Visit {
    views: u64,
}

fn main() {}

use tessera::SessionData;

#[derive(SessionData, Default)]
#[session(cookie(max_age = 0))]
struct Visit {
    views: u64,
}

fn main() {}

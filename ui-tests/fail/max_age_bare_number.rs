use tessera::SessionData;

#[derive(SessionData, Default)]
#[session(cookie(max_age = 1800))]
struct Visit {
    views: u64,
}

fn main() {}

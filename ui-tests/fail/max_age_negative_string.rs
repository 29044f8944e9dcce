use tessera::SessionData;

#[derive(SessionData, Default)]
#[session(cookie(max_age = "-5m"))]
struct Visit {
    views: u64,
}

fn main() {}

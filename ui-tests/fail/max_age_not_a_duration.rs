use tessera::SessionData;

#[derive(SessionData, Default)]
#[session(cookie(max_age = "30 minutes"))]
struct Visit {
    views: u64,
}

fn main() {}

use tessera::SessionData;

#[derive(SessionData, Default)]
#[session(cookie(max_age = "1h", expires = "2030-01-01T00:00:00Z"))]
struct Visit {
    views: u64,
}

fn main() {}

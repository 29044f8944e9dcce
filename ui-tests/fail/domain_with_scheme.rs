use tessera::SessionData;

#[derive(SessionData, Default)]
#[session(cookie(domain = "https://example.com"))]
struct Visit {
    views: u64,
}

fn main() {}

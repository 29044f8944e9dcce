use tessera::SessionData;

#[derive(SessionData, Default)]
#[session(cookie(domain = "example.com:8080"))]
struct Visit {
    views: u64,
}

fn main() {}

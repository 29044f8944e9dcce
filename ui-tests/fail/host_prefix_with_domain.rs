use tessera::SessionData;

#[derive(SessionData, Default)]
#[session(name = "__Host-sid", cookie(secure = true, domain = "example.com"))]
struct Visit {
    views: u64,
}

fn main() {}

use tessera::SessionData;

#[derive(SessionData, Default)]
#[session(cookie(samesite = "lax"))]
struct Visit {
    views: u64,
}

fn main() {}

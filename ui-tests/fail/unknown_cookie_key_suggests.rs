use tessera::SessionData;

#[derive(SessionData, Default)]
#[session(cookie(maxage = "30m", samesite = "lax"))]
struct Visit {
    views: u64,
}

fn main() {}

use tessera::SessionData;

#[derive(SessionData, Default)]
#[session(cookie(maxage = "30m"))]
struct Visit {
    views: u64,
}

fn main() {}

use tessera::SessionData;

#[derive(SessionData, Default)]
#[session(cookie(expires = "next tuesday"))]
struct Visit {
    views: u64,
}

fn main() {}

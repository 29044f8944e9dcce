use tessera::SessionData;

#[derive(SessionData, Default)]
#[session(cookie(secure = "yes"))]
struct Visit {
    views: u64,
}

fn main() {}

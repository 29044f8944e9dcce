use tessera::SessionData;

#[derive(SessionData, Default)]
#[session(cookie(path = "/", path = "/app"))]
struct Visit {
    views: u64,
}

fn main() {}

use tessera::SessionData;

#[derive(SessionData, Default)]
#[session(cookie(max_age = "2w"))]
struct Visit {
    views: u64,
}

fn main() {}

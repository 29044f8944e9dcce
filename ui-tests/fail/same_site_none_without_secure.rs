use tessera::SessionData;

#[derive(SessionData, Default)]
#[session(cookie(same_site = "none"))]
struct Visit {
    views: u64,
}

fn main() {}

use tessera::SessionData;

#[derive(SessionData, Default)]
#[session(cookie(same_site = "none", secure = "auto"))]
struct Visit {
    views: u64,
}

fn main() {}

use tessera::SessionData;

#[derive(SessionData, Default)]
#[session(cookie(same_site = "none", secure = "yes"))]
struct Visit {
    views: u64,
}

fn main() {}

use tessera::SessionData;

#[derive(SessionData, Default)]
#[session(cookie(same_site = "sometimes"))]
struct Visit {
    views: u64,
}

fn main() {}

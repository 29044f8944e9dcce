use tessera::SessionData;

#[derive(SessionData, Default)]
#[session(cookie(same_site = 1))]
struct Visit {
    views: u64,
}

fn main() {}

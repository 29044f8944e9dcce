use tessera::SessionData;

#[derive(SessionData, Default)]
#[session(cookie(priority = "urgent"))]
struct Visit {
    views: u64,
}

fn main() {}

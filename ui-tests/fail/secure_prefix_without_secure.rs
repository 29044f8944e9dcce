use tessera::SessionData;

#[derive(SessionData, Default)]
#[session(name = "__Secure-sid", cookie(secure = false))]
struct Visit {
    views: u64,
}

fn main() {}

use tessera::SessionData;

#[derive(SessionData, Default)]
struct Visit {
    views: u64,
    #[session(rename = "views")]
    count: u64,
}

fn main() {}

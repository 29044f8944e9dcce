use tessera::SessionData;

#[derive(SessionData, Default)]
#[session(cookie(partitioned))]
struct Visit {
    views: u64,
}

fn main() {}

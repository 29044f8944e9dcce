use tessera::SessionData;

// Every mistake is reported in one pass, each at its own token.
#[derive(SessionData, Default)]
#[session(rollin, cookie(maxage = "1m", same_site = "sometimes"), unset = "drop")]
struct Visit {
    views: u64,
    #[session(rename = "views")]
    count: u64,
}

fn main() {}

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tessera::{Session, SessionData};

#[derive(Serialize, Deserialize, Default)]
struct Item {
    sku: String,
}

#[derive(SessionData, Default)]
#[session(
    name = "sid",
    cookie(
        max_age = "30m",
        path = "/",
        domain = "example.com",
        http_only = true,
        secure = "auto",
        same_site = "lax",
        partitioned = false,
        priority = "high"
    ),
    rolling,
    resave = false,
    save_uninitialized = false,
    unset = "destroy",
    proxy = true
)]
pub struct Visit {
    views: u64,
    user: Option<String>,
    #[session(rename = "cartItems")]
    cart: Vec<Item>,
    #[session(skip)]
    scratch: u8,
    #[session(flatten)]
    rest: Map<String, Value>,
}

#[allow(dead_code)]
async fn handler(mut session: Session<Visit>) -> String {
    *session.views += 1;
    session.cart.push(Item::default());
    session.scratch = 1;
    session.rest.insert("k".into(), Value::Bool(true));
    format!("{} {:?}", *session.views, *session.user)
}

fn main() {
    let o = <Visit as SessionData>::options();
    assert_eq!(o.name(), "sid");
    assert_eq!(o.path(), "/");
}

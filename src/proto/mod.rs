//! The protocol layer, sans-IO: frames and their codec, schemas, the one error vocabulary, the
//! connect gate, the permission gate and event recipient rules. Nothing here touches a socket
//! or reads a clock, so all of it is unit-tested directly.

pub mod bounds;
pub mod errors;
pub mod events;
pub mod frame;
pub mod handshake;
pub mod schema;
pub mod schema_chat;
pub mod schema_ops;
pub mod scope_table;
pub mod scopes;
pub mod wsframe;
pub mod wsread;

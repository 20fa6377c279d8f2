//! weft-config: the declarative model of a weft overlay.
//!
//! One TOML file (or several layered ones, plus `WEFT_SECTION__KEY` environment overrides)
//! describes every tenant network, site and gateway of an overlay. [`Loader`] turns it into
//! a validated [`Intent`], or into [`Diagnostics`] that list every mistake at once with
//! file, line, column, key path, what was expected and a hint.
//!
//! This crate knows nothing of the dataplane or of clouds; the gateway translates an
//! [`Intent`] into their inputs.

mod diagnostic;
pub mod file_model;
mod intent;
mod key_path;
mod keys;
mod label;
mod loader;
mod names;
mod partial;
mod schema;
mod source_map;
mod syntax;
mod validate;

pub use diagnostic::{Diagnostic, Diagnostics};
pub use intent::{
    Attachment, CredentialSource, Endpoint, EndpointHost, Gateway, Intent, Network, NetworkId,
    NextHop, Overlay, RouteTableRef, Site, SiteKind, Tenant,
};
pub use key_path::{KeyPath, Segment};
pub use keys::{KeyError, KeyFileError, PrivateKey, PublicKey, read_private_key};
pub use label::Label;
pub use loader::{ENV_PREFIX, LoadError, Loader};
pub use schema::json_schema;
pub use source_map::{Anchor, Location, SourceMap};

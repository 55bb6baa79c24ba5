//! Who is calling: JWT verification (HS256 secret, PEM public key or JWKS), token extraction
//! from the header or cookie, the CSRF origin check, and dev-token minting.

mod claims;
mod csrf;
mod jwks;
mod keys;
mod middleware;
mod mint;
mod verified;

pub use claims::Claims;
pub use csrf::OriginPolicy;
pub use keys::{AuthError, Authenticator};
pub use middleware::{AuthState, AuthUser, TokenSource, authenticate};
pub use mint::TokenMinter;
pub use verified::Verified;

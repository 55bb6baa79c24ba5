//! What every call to the AI service carries from the incoming request.

use crate::auth::AuthUser;
use crate::http::request_id;
use crate::upstream::CallContext;

/// The request id (propagated to the AI service) and the caller's user id.
pub fn call_context(user: Option<&AuthUser>) -> CallContext {
    CallContext {
        request_id: request_id::current_header(),
        user_id: user.map(|u| u.id.to_string()),
    }
}

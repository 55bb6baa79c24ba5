//! Event bus: in-process and Redis pub/sub behind one interface.

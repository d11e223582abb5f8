//! handoff: validates custody events from agencies, journals them, and decides who takes
//! custody under the rules of the ICD. See `ARCHITECTURE.md` for the map.

pub mod schemas;

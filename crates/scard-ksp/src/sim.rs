//! `sim:` readers (feature `sim`): in-process simulated cards of scard-sim
//! ([`scard_sim::reader`]), each created the first time its reader is connected, from its
//! state file when the name has one and the file exists, saved after every command that may
//! change the card and when the card goes; `sim:hostile[:<seed>]` is the hostile card.

pub use scard_sim::reader::sim_backend;

//! Nitrokey's `piv-authenticator` (PIV, SP 800-73-4) as a virtual card on a vpcd port.
//! Defaults of the card: PIN 123456, PUK 12345678, management key 3DES 0102030405060708 x3.

use std::io;
use std::process::ExitCode;

use apdu_dispatch::App;
use piv_authenticator::{Authenticator, Options};
use scard_third_party_cards::{Applet, CardClient, End};

struct Piv;

impl Applet for Piv {
    const NAME: &'static str = "piv-authenticator 0.7.0";
    const CLIENT_ID: &'static str = "piv";

    fn serve(
        &self,
        client: CardClient<'_>,
        serve: &mut dyn FnMut(&mut dyn App) -> io::Result<End>,
    ) -> io::Result<End> {
        // Options::default(): keys and data objects in the external storage.
        let mut app = Authenticator::new(client, Options::default());
        serve(&mut app)
    }
}

fn main() -> ExitCode {
    scard_third_party_cards::main(Piv)
}

//! Nitrokey's `opcard` (OpenPGP card 3.4) as a virtual card on a vpcd port.
//! Defaults of the card: PW1 123456, PW3 12345678.

use std::io;
use std::process::ExitCode;

use apdu_dispatch::App;
use opcard::{Card, Options};
use scard_third_party_cards::{Applet, Args, CardClient, End};

struct OpenPgp {
    options: Options,
}

impl Applet for OpenPgp {
    const NAME: &'static str = "opcard 1.11.0";
    const CLIENT_ID: &'static str = "opcard";
    const SERIAL: bool = true;

    fn serve(
        &self,
        client: CardClient<'_>,
        serve: &mut dyn FnMut(&mut dyn App) -> io::Result<End>,
    ) -> io::Result<End> {
        let mut app = Card::new(client, self.options.clone());
        serve(&mut app)
    }
}

fn main() -> ExitCode {
    // Options::default(): manufacturer 0000 (test card), keys in the external storage.
    let mut options = Options::default();
    if let Ok(args) = Args::parse(std::env::args().skip(1), OpenPgp::SERIAL) {
        if let Some(serial) = args.serial {
            options.serial = serial;
        }
    }
    scard_third_party_cards::main(OpenPgp { options })
}

//! The card-model example in card-profiles/README.md loads (the documentation stays true).

use scard_minidriver::CardModel;

#[test]
fn readme_example_loads() {
    let readme = include_str!("../../../card-profiles/README.md");
    let start = readme.find("```toml\n").expect("a toml block") + "```toml\n".len();
    let end = start + readme[start..].find("```").expect("end of the block");
    let model = CardModel::from_toml("README.md", &readme[start..end]).unwrap();
    assert_eq!(model.family, "piv");
    assert_eq!(model.containers, vec![0x9A, 0x9C, 0x9D, 0x9E]);
    assert_eq!(model.user_pin.pad, Some(0xFF));
    assert!(model.limits.extended_length);
    let atr =
        scard_iso7816::hex::decode_lenient("3B F8 13 00 00 81 31 FE 15 59 75 62 69 6B 65 79 34 00")
            .unwrap();
    assert!(model.match_atr(&atr).is_some());
}

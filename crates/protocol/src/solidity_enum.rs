//! Solidity enums as Rust enums with names: a JSON document or a person sees `approved`,
//! never the number the contract returns.

/// Declares a Rust enum for a Solidity enum: its variants with their numbers and names
/// (a Solidity `None`, 0, is no variant: [`from_solidity`] gives `None` for it), serde by
/// name, `Display` by name.
///
/// [`from_solidity`]: crate::study::StudyStatus::from_solidity
macro_rules! solidity_enum {
    (
        $(#[$meta:meta])*
        $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $n:literal => $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $text)] $variant, )+
        }

        impl $name {
            /// The value of the Solidity enum's number (`None` for 0, the Solidity `None`, and
            /// for numbers this version does not know).
            pub fn from_solidity(v: u8) -> Option<Self> {
                match v {
                    $( $n => Some(Self::$variant), )+
                    _ => None,
                }
            }

            /// The Solidity enum's number.
            pub const fn to_solidity(self) -> u8 {
                match self {
                    $( Self::$variant => $n, )+
                }
            }

            /// The name, as in JSON.
            pub const fn name(self) -> &'static str {
                match self {
                    $( Self::$variant => $text, )+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

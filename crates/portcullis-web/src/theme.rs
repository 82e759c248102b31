//! The issuer's colours: the brand colour and the ink on it, for light and dark mode, served
//! as a small stylesheet (`/static/theme.css`) after `style.css`, so the CSP keeps refusing
//! inline style.
//!
//! A colour scheme people cannot read is refused before the server starts: the brand ink on
//! the brand colour (header, main buttons) and the brand colour as link text on the page's
//! background and on its cards must each reach the WCAG 2.x contrast ratio of 4.5:1.

use std::fmt;

/// Text contrast WCAG 2.x asks for (success criterion 1.4.3, level AA).
pub const MIN_CONTRAST: f64 = 4.5;

/// A colour written `#rrggbb`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Colour {
    r: u8,
    g: u8,
    b: u8,
}

impl Colour {
    pub const fn rgb(r: u8, g: u8, b: u8) -> Self {
        Self { r, g, b }
    }

    pub fn parse(input: &str) -> Result<Self, String> {
        let bad = || format!("{input:?} is not a colour written #rrggbb (like #006fcf)");
        let hex = input.strip_prefix('#').ok_or_else(bad)?;
        if hex.len() != 6 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let part = |i: usize| {
            hex.get(i..i + 2)
                .and_then(|p| u8::from_str_radix(p, 16).ok())
                .ok_or_else(bad)
        };
        Ok(Self::rgb(part(0)?, part(2)?, part(4)?))
    }

    /// Relative luminance (WCAG 2.x definition, sRGB).
    fn luminance(self) -> f64 {
        let channel = |v: u8| {
            let c = f64::from(v) / 255.0;
            if c <= 0.040_45 {
                c / 12.92
            } else {
                ((c + 0.055) / 1.055).powf(2.4)
            }
        };
        0.2126 * channel(self.r) + 0.7152 * channel(self.g) + 0.0722 * channel(self.b)
    }

    /// The WCAG contrast ratio between two colours, 1 to 21.
    pub fn contrast(self, other: Colour) -> f64 {
        let (a, b) = (self.luminance(), other.luminance());
        let (light, dark) = if a > b { (a, b) } else { (b, a) };
        (light + 0.05) / (dark + 0.05)
    }
}

impl fmt::Display for Colour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{:02x}{:02x}{:02x}", self.r, self.g, self.b)
    }
}

/// The backgrounds `style.css` puts text on, light and dark: the page (`--bg`) and its cards
/// (`--surface`). A test holds these to the stylesheet.
pub const LIGHT_BACKGROUNDS: [(&str, Colour); 2] = [
    ("page background", Colour::rgb(0xf4, 0xf6, 0xf8)),
    ("card background", Colour::rgb(0xff, 0xff, 0xff)),
];
pub const DARK_BACKGROUNDS: [(&str, Colour); 2] = [
    ("page background", Colour::rgb(0x0f, 0x14, 0x19)),
    ("card background", Colour::rgb(0x18, 0x20, 0x28)),
];

/// The issuer's colours. The defaults are `style.css`'s own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Theme {
    pub brand: Colour,
    pub brand_ink: Colour,
    pub brand_dark: Colour,
    pub brand_ink_dark: Colour,
}

impl Default for Theme {
    fn default() -> Self {
        Self {
            brand: Colour::rgb(0x00, 0x6f, 0xcf),
            brand_ink: Colour::rgb(0xff, 0xff, 0xff),
            brand_dark: Colour::rgb(0x4d, 0xa3, 0xff),
            brand_ink_dark: Colour::rgb(0x0b, 0x14, 0x20),
        }
    }
}

impl Theme {
    /// Every pair of colours below 4.5:1, each described so an operator can act on it; empty
    /// when the theme is readable.
    pub fn contrast_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (mode, brand, ink, backgrounds, keys) in [
            (
                "light",
                self.brand,
                self.brand_ink,
                &LIGHT_BACKGROUNDS,
                ("theme.brand", "theme.brand_ink"),
            ),
            (
                "dark",
                self.brand_dark,
                self.brand_ink_dark,
                &DARK_BACKGROUNDS,
                ("theme.brand_dark", "theme.brand_ink_dark"),
            ),
        ] {
            let ratio = ink.contrast(brand);
            if ratio < MIN_CONTRAST {
                problems.push(format!(
                    "{} {ink} on {} {brand} has a contrast of {ratio:.2}:1 ({mode} mode); \
                     text needs at least {MIN_CONTRAST}:1",
                    keys.1, keys.0
                ));
            }
            for (what, background) in backgrounds {
                let ratio = brand.contrast(*background);
                if ratio < MIN_CONTRAST {
                    problems.push(format!(
                        "{} {brand} as link text on the {what} {background} has a contrast of \
                         {ratio:.2}:1 ({mode} mode); text needs at least {MIN_CONTRAST}:1",
                        keys.0
                    ));
                }
            }
        }
        problems
    }

    /// The stylesheet served at `/static/theme.css`.
    pub fn css(&self) -> String {
        format!(
            "/* The issuer's colours, from the configuration (theme.*). */\n\
             :root {{ --brand: {}; --brand-ink: {}; }}\n\
             @media (prefers-color-scheme: dark) {{\n  :root {{ --brand: {}; --brand-ink: {}; }}\n}}\n",
            self.brand, self.brand_ink, self.brand_dark, self.brand_ink_dark
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_only_rrggbb() {
        assert_eq!(Colour::parse("#006fcf"), Ok(Colour::rgb(0, 0x6f, 0xcf)));
        assert_eq!(Colour::parse("#00AAFF"), Ok(Colour::rgb(0, 0xaa, 0xff)));
        for bad in [
            "006fcf", "#06f", "#006fcg", "#006fcf0", "", "#", "blue", "#ééé",
        ] {
            assert!(Colour::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(Colour::rgb(0, 0x6f, 0xcf).to_string(), "#006fcf");
    }

    #[test]
    fn contrast_matches_wcag() {
        let white = Colour::rgb(255, 255, 255);
        let black = Colour::rgb(0, 0, 0);
        assert!((white.contrast(black) - 21.0).abs() < 1e-9);
        assert!((black.contrast(white) - 21.0).abs() < 1e-9);
        assert!((white.contrast(white) - 1.0).abs() < 1e-9);
        // #767676 on white is the well-known lightest grey that passes: 4.54:1.
        let grey = Colour::rgb(0x76, 0x76, 0x76);
        assert!((grey.contrast(white) - 4.54).abs() < 0.01);
    }

    #[test]
    fn the_defaults_are_readable_and_are_the_stylesheets() {
        let theme = Theme::default();
        assert_eq!(theme.contrast_problems(), Vec::<String>::new());
        let style = crate::pages::STYLESHEET;
        let (light, dark) = style
            .split_once("@media (prefers-color-scheme: dark)")
            .unwrap();
        let var = |css: &str, name: &str| {
            let at = css.find(&format!("--{name}:")).unwrap();
            let rest = &css[at + name.len() + 3..];
            Colour::parse(rest[..rest.find(';').unwrap()].trim()).unwrap()
        };
        assert_eq!(var(light, "brand"), theme.brand);
        assert_eq!(var(light, "brand-ink"), theme.brand_ink);
        assert_eq!(var(dark, "brand"), theme.brand_dark);
        assert_eq!(var(dark, "brand-ink"), theme.brand_ink_dark);
        assert_eq!(var(light, "bg"), LIGHT_BACKGROUNDS[0].1);
        assert_eq!(var(light, "surface"), LIGHT_BACKGROUNDS[1].1);
        assert_eq!(var(dark, "bg"), DARK_BACKGROUNDS[0].1);
        assert_eq!(var(dark, "surface"), DARK_BACKGROUNDS[1].1);
    }

    #[test]
    fn unreadable_pairs_are_named() {
        let pale = Theme {
            brand: Colour::rgb(0x7f, 0xb8, 0xff),
            ..Theme::default()
        };
        let problems = pale.contrast_problems();
        assert_eq!(problems.len(), 3, "{problems:#?}");
        assert!(problems[0].starts_with("theme.brand_ink #ffffff on theme.brand #7fb8ff"));
        assert!(problems[1].contains("link text on the page background"));
        let dark = Theme {
            brand_ink_dark: Colour::rgb(0x40, 0x60, 0x80),
            ..Theme::default()
        };
        let problems = dark.contrast_problems();
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert!(problems[0].contains("(dark mode)"));
    }

    #[test]
    fn the_stylesheet_carries_each_colour_in_its_mode() {
        let theme = Theme {
            brand: Colour::rgb(0x12, 0x34, 0x56),
            brand_ink: Colour::rgb(0xfe, 0xdc, 0xba),
            brand_dark: Colour::rgb(0xab, 0xcd, 0xef),
            brand_ink_dark: Colour::rgb(0x01, 0x02, 0x03),
        };
        let css = theme.css();
        let (light, dark) = css.split_once("@media").unwrap();
        assert!(light.contains("--brand: #123456; --brand-ink: #fedcba;"));
        assert!(dark.contains("--brand: #abcdef; --brand-ink: #010203;"));
    }
}

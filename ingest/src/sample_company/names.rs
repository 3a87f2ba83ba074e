//! Word lists for names, places and companies. Small on purpose: repeated names across companies
//! are realistic, and are why matching must not rely on names.

/// A country the sample company sells to.
pub struct Country {
    /// ISO 3166 alpha-2 code.
    pub code: &'static str,
    /// English name, as a CRM prints it.
    pub name: &'static str,
    /// Sales region.
    pub region: &'static str,
    /// Share of customers.
    pub weight: f64,
    /// International dialling code without the plus.
    pub dial: &'static str,
    /// Internet top-level domain.
    pub tld: &'static str,
    /// Legal-form suffixes for company names.
    pub legal: &'static [&'static str],
    /// Cities with a two- or three-digit area code.
    pub cities: &'static [(&'static str, &'static str)],
    /// The warehouse that ships there.
    pub warehouse: usize,
}

/// The distribution centres, in `Country::warehouse` order.
pub const WAREHOUSES: [&str; 2] = ["DC-NORTH", "DC-WEST"];

/// Where customers are.
pub const COUNTRIES: &[Country] = &[
    Country {
        code: "DE",
        name: "Germany",
        region: "DACH",
        weight: 0.26,
        dial: "49",
        tld: "de",
        legal: &["GmbH", "AG", "GmbH & Co. KG", "KG"],
        cities: &[
            ("Berlin", "30"),
            ("Hamburg", "40"),
            ("Munich", "89"),
            ("Cologne", "221"),
            ("Frankfurt", "69"),
            ("Stuttgart", "711"),
            ("Leipzig", "341"),
            ("Dortmund", "231"),
        ],
        warehouse: 0,
    },
    Country {
        code: "AT",
        name: "Austria",
        region: "DACH",
        weight: 0.05,
        dial: "43",
        tld: "at",
        legal: &["GmbH", "AG"],
        cities: &[("Vienna", "1"), ("Graz", "316"), ("Linz", "732"), ("Salzburg", "662")],
        warehouse: 0,
    },
    Country {
        code: "CH",
        name: "Switzerland",
        region: "DACH",
        weight: 0.05,
        dial: "41",
        tld: "ch",
        legal: &["AG", "GmbH", "SA"],
        cities: &[("Zurich", "44"), ("Basel", "61"), ("Bern", "31"), ("Geneva", "22")],
        warehouse: 0,
    },
    Country {
        code: "NL",
        name: "Netherlands",
        region: "Benelux",
        weight: 0.08,
        dial: "31",
        tld: "nl",
        legal: &["B.V.", "N.V."],
        cities: &[
            ("Amsterdam", "20"),
            ("Rotterdam", "10"),
            ("Utrecht", "30"),
            ("Eindhoven", "40"),
        ],
        warehouse: 0,
    },
    Country {
        code: "BE",
        name: "Belgium",
        region: "Benelux",
        weight: 0.05,
        dial: "32",
        tld: "be",
        legal: &["NV", "BV", "SA"],
        cities: &[("Brussels", "2"), ("Antwerp", "3"), ("Ghent", "9"), ("Liege", "4")],
        warehouse: 0,
    },
    Country {
        code: "FR",
        name: "France",
        region: "France",
        weight: 0.15,
        dial: "33",
        tld: "fr",
        legal: &["SAS", "SARL", "SA"],
        cities: &[
            ("Paris", "1"),
            ("Lyon", "4"),
            ("Marseille", "4"),
            ("Toulouse", "5"),
            ("Lille", "3"),
            ("Nantes", "2"),
        ],
        warehouse: 1,
    },
    Country {
        code: "GB",
        name: "United Kingdom",
        region: "UK & Ireland",
        weight: 0.12,
        dial: "44",
        tld: "co.uk",
        legal: &["Ltd", "PLC", "LLP"],
        cities: &[
            ("London", "20"),
            ("Manchester", "161"),
            ("Birmingham", "121"),
            ("Leeds", "113"),
            ("Glasgow", "141"),
            ("Bristol", "117"),
        ],
        warehouse: 1,
    },
    Country {
        code: "IE",
        name: "Ireland",
        region: "UK & Ireland",
        weight: 0.03,
        dial: "353",
        tld: "ie",
        legal: &["Ltd", "DAC"],
        cities: &[("Dublin", "1"), ("Cork", "21"), ("Galway", "91")],
        warehouse: 1,
    },
    Country {
        code: "ES",
        name: "Spain",
        region: "Southern Europe",
        weight: 0.07,
        dial: "34",
        tld: "es",
        legal: &["S.L.", "S.A."],
        cities: &[
            ("Madrid", "91"),
            ("Barcelona", "93"),
            ("Valencia", "96"),
            ("Seville", "95"),
        ],
        warehouse: 1,
    },
    Country {
        code: "IT",
        name: "Italy",
        region: "Southern Europe",
        weight: 0.06,
        dial: "39",
        tld: "it",
        legal: &["S.r.l.", "S.p.A."],
        cities: &[("Milan", "2"), ("Rome", "6"), ("Turin", "11"), ("Bologna", "51")],
        warehouse: 1,
    },
    Country {
        code: "PL",
        name: "Poland",
        region: "Central Europe",
        weight: 0.04,
        dial: "48",
        tld: "pl",
        legal: &["Sp. z o.o.", "S.A."],
        cities: &[("Warsaw", "22"), ("Krakow", "12"), ("Wroclaw", "71"), ("Poznan", "61")],
        warehouse: 0,
    },
    Country {
        code: "DK",
        name: "Denmark",
        region: "Nordics",
        weight: 0.02,
        dial: "45",
        tld: "dk",
        legal: &["A/S", "ApS"],
        cities: &[("Copenhagen", "33"), ("Aarhus", "86"), ("Odense", "66")],
        warehouse: 0,
    },
    Country {
        code: "SE",
        name: "Sweden",
        region: "Nordics",
        weight: 0.02,
        dial: "46",
        tld: "se",
        legal: &["AB"],
        cities: &[("Stockholm", "8"), ("Gothenburg", "31"), ("Malmo", "40")],
        warehouse: 0,
    },
];

/// First words of company names.
pub const COMPANY_HEADS: &[&str] = &[
    "Nordic",
    "Atlas",
    "Vertex",
    "Alpine",
    "Summit",
    "Harbor",
    "Pioneer",
    "Crest",
    "Beacon",
    "Sterling",
    "Meridian",
    "Orbit",
    "Keystone",
    "Falcon",
    "Granite",
    "Horizon",
    "Linden",
    "Maple",
    "Oakridge",
    "Rhein",
    "Baltic",
    "Danube",
    "Iberia",
    "Lumen",
    "Nova",
    "Quantum",
    "Regal",
    "Silver",
    "Triton",
    "Unity",
    "Vantage",
    "Westend",
    "Zenith",
    "Apex",
    "Blue",
    "Cedar",
    "Delta",
    "Evergreen",
    "Fjord",
    "Golden",
    "Hansa",
    "Ivory",
    "Jade",
    "Kestrel",
    "Lotus",
    "Mistral",
    "North Star",
    "Olympus",
    "Polaris",
    "Riviera",
];

/// Second words of company names (the trade).
pub const COMPANY_TRADES: &[&str] = &[
    "Logistics",
    "Engineering",
    "Foods",
    "Hotels",
    "Clinics",
    "Dental",
    "Architects",
    "Consulting",
    "Printing",
    "Motors",
    "Textiles",
    "Pharma",
    "Electronics",
    "Construction",
    "Facilities",
    "Software",
    "Media",
    "Retail",
    "Labs",
    "Metalworks",
    "Plastics",
    "Packaging",
    "Schools",
    "Insurance",
    "Law Partners",
    "Accounting",
    "Fitness",
    "Bakeries",
    "Brewing",
    "Optics",
    "Furniture",
    "Transport",
    "Energy",
    "Security",
    "Cleaning",
    "Catering",
    "Robotics",
    "Solar",
    "Tooling",
    "Ventures",
];

/// The industry each trade belongs to, in `COMPANY_TRADES` order.
pub const TRADE_INDUSTRY: &[&str] = &[
    "Transportation",
    "Manufacturing",
    "Food & Beverage",
    "Hospitality",
    "Healthcare",
    "Healthcare",
    "Professional Services",
    "Professional Services",
    "Manufacturing",
    "Automotive",
    "Manufacturing",
    "Healthcare",
    "Technology",
    "Construction",
    "Real Estate",
    "Technology",
    "Media",
    "Retail",
    "Healthcare",
    "Manufacturing",
    "Manufacturing",
    "Manufacturing",
    "Education",
    "Financial Services",
    "Professional Services",
    "Professional Services",
    "Hospitality",
    "Food & Beverage",
    "Food & Beverage",
    "Healthcare",
    "Manufacturing",
    "Transportation",
    "Energy",
    "Professional Services",
    "Real Estate",
    "Hospitality",
    "Technology",
    "Energy",
    "Manufacturing",
    "Financial Services",
];

/// Given names.
pub const FIRST_NAMES: &[&str] = &[
    "Anna", "Lukas", "Sophie", "Jonas", "Marie", "Felix", "Emma", "Paul", "Laura", "Leon", "Julia", "Max", "Clara",
    "Elias", "Lea", "Noah", "Camille", "Hugo", "Chloe", "Louis", "Ines", "Jules", "Manon", "Arthur", "Olivia", "Jack",
    "Amelia", "Harry", "Isla", "George", "Grace", "Oscar", "Sofia", "Mateo", "Lucia", "Pablo", "Giulia", "Marco",
    "Chiara", "Luca", "Zofia", "Jakub", "Freja", "Magnus", "Astrid", "Erik", "Sanne", "Daan", "Eva", "Bram", "Niamh",
    "Sean", "Aoife", "Conor", "Lena", "Tobias", "Mia", "David", "Sara", "Martin", "Nina", "Thomas", "Helena", "Stefan",
    "Petra", "Andreas", "Katrin", "Michael", "Ana", "Miguel",
];

/// Family names.
pub const LAST_NAMES: &[&str] = &[
    "Müller",
    "Schmidt",
    "Schneider",
    "Fischer",
    "Weber",
    "Meyer",
    "Wagner",
    "Becker",
    "Schulz",
    "Hoffmann",
    "Martin",
    "Bernard",
    "Dubois",
    "Thomas",
    "Robert",
    "Richard",
    "Petit",
    "Durand",
    "Leroy",
    "Moreau",
    "Smith",
    "Jones",
    "Taylor",
    "Brown",
    "Williams",
    "Wilson",
    "Johnson",
    "Davies",
    "Evans",
    "Walker",
    "Garcia",
    "Fernandez",
    "Gonzalez",
    "Rodriguez",
    "Lopez",
    "Rossi",
    "Russo",
    "Ferrari",
    "Esposito",
    "Bianchi",
    "Nowak",
    "Kowalski",
    "Wisniewski",
    "Jensen",
    "Nielsen",
    "Hansen",
    "Andersson",
    "Johansson",
    "Karlsson",
    "de Jong",
    "Jansen",
    "de Vries",
    "van Dijk",
    "Bakker",
    "Peeters",
    "Janssens",
    "Maes",
    "Murphy",
    "Kelly",
    "O'Brien",
    "Byrne",
    "Gruber",
    "Huber",
    "Bauer",
    "Keller",
    "Zimmermann",
    "Braun",
    "Krüger",
    "Hartmann",
    "Lange",
];

/// Job titles of contacts.
pub const TITLES: &[&str] = &[
    "Purchasing Manager",
    "Office Manager",
    "Facility Manager",
    "Head of Procurement",
    "CFO",
    "Operations Director",
    "Accounts Payable",
    "Managing Director",
    "Buyer",
    "Team Assistant",
];

/// An ASCII slug of a name for e-mail addresses and domains ("Krüger & Co." -> "krueger-co").
pub fn slug(name: &str, out: &mut String) {
    let mut dash = false;
    for ch in name.chars() {
        let mapped: &str = match ch {
            'ä' | 'Ä' => "ae",
            'ö' | 'Ö' => "oe",
            'ü' | 'Ü' => "ue",
            'ß' => "ss",
            'é' | 'è' | 'ê' | 'É' => "e",
            'á' | 'à' => "a",
            'ó' | 'ò' => "o",
            'í' => "i",
            'ø' => "o",
            'å' => "a",
            c if c.is_ascii_alphanumeric() => {
                if dash && !out.is_empty() {
                    out.push('-');
                }
                dash = false;
                out.push(c.to_ascii_lowercase());
                continue;
            }
            _ => {
                dash = true;
                continue;
            }
        };
        if dash && !out.is_empty() {
            out.push('-');
        }
        dash = false;
        out.push_str(mapped);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_line_up() {
        assert_eq!(COMPANY_TRADES.len(), TRADE_INDUSTRY.len());
        let total: f64 = COUNTRIES.iter().map(|c| c.weight).sum();
        assert!((total - 1.0).abs() < 1e-9, "country weights sum to {total}");
        let mut s = String::new();
        slug("Krüger & Co. O'Brien", &mut s);
        assert_eq!(s, "krueger-co-o-brien");
    }
}

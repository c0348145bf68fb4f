//! The OCSF 1.8.0 facts sluice needs at run time: the classes grammars may choose, their
//! valid activity ids, and the captions of the enums sluice fills itself. Taken from the
//! OCSF enum tables (`shared/ocsf/enums.md`); the test `ocsf_tables_match_schemas` checks
//! them against the schemas.

pub const OCSF_VERSION: &str = "1.8.0";

pub struct Class {
    pub uid: u32,
    pub name: &'static str,
    pub category_uid: u32,
    pub category_name: &'static str,
    pub activities: &'static [u32],
}

pub const CLASSES: &[Class] = &[
    Class {
        uid: 0,
        name: "Base Event",
        category_uid: 0,
        category_name: "Uncategorized",
        activities: &[0, 99],
    },
    Class {
        uid: 1001,
        name: "File System Activity",
        category_uid: 1,
        category_name: "System Activity",
        activities: &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 99],
    },
    Class {
        uid: 2002,
        name: "Vulnerability Finding",
        category_uid: 2,
        category_name: "Findings",
        activities: &[0, 1, 2, 3, 99],
    },
    Class {
        uid: 2003,
        name: "Compliance Finding",
        category_uid: 2,
        category_name: "Findings",
        activities: &[0, 1, 2, 3, 99],
    },
    Class {
        uid: 2004,
        name: "Detection Finding",
        category_uid: 2,
        category_name: "Findings",
        activities: &[0, 1, 2, 3, 99],
    },
    Class {
        uid: 2005,
        name: "Incident Finding",
        category_uid: 2,
        category_name: "Findings",
        activities: &[0, 1, 2, 3, 99],
    },
    Class {
        uid: 3001,
        name: "Account Change",
        category_uid: 3,
        category_name: "Identity & Access Management",
        activities: &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 99],
    },
    Class {
        uid: 3002,
        name: "Authentication",
        category_uid: 3,
        category_name: "Identity & Access Management",
        activities: &[0, 1, 2, 3, 4, 5, 6, 7, 99],
    },
    Class {
        uid: 3004,
        name: "Entity Management",
        category_uid: 3,
        category_name: "Identity & Access Management",
        activities: &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 99],
    },
    Class {
        uid: 4009,
        name: "Email Activity",
        category_uid: 4,
        category_name: "Network Activity",
        activities: &[0, 1, 2, 3, 4, 5, 99],
    },
    Class {
        uid: 5019,
        name: "Device Config State Change",
        category_uid: 5,
        category_name: "Discovery",
        activities: &[0, 1, 2, 3, 99],
    },
    Class {
        uid: 6001,
        name: "Web Resources Activity",
        category_uid: 6,
        category_name: "Application Activity",
        activities: &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 99],
    },
    Class {
        uid: 6002,
        name: "Application Lifecycle",
        category_uid: 6,
        category_name: "Application Activity",
        activities: &[0, 1, 2, 3, 4, 5, 6, 7, 8, 99],
    },
];

pub fn class(uid: u32) -> Option<&'static Class> {
    CLASSES.iter().find(|c| c.uid == uid)
}

pub fn severity_caption(id: i64) -> &'static str {
    match id {
        0 => "Unknown",
        1 => "Informational",
        2 => "Low",
        3 => "Medium",
        4 => "High",
        5 => "Critical",
        6 => "Fatal",
        _ => "Other",
    }
}

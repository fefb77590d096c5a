import Testing

/// Every test in this target boots a VM (or runs sm-runc, which does). On the
/// 2-core, emulating build machines one boot costs 15-60 s and two at once slow each
/// other down, so they all run one at a time: the suites below nest in this one.
@Suite(.serialized) enum VMBootTests {}

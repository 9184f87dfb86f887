package selector

// Labels with special meaning for namespace scoping (docs/calico.md).
const (
	// NamespaceLabel is present on every namespaced endpoint and NetworkSet;
	// its value is the namespace (for OpenStack, openstack-region-<region>).
	NamespaceLabel = "projectcalico.org/namespace"
	// NamespaceLabelPrefix is prepended to every label a namespaceSelector
	// tests: namespace labels reach endpoints under this prefix.
	NamespaceLabelPrefix = "pcns."
)

// namespaceIs returns the node "projectcalico.org/namespace == '<ns>'".
func namespaceIs(ns string) node { return eqNode{key: NamespaceLabel, value: ns} }

// scopeNamespaceSelector converts a namespaceSelector into a selector over
// endpoint labels: every label gets the pcns. prefix, all() becomes
// has(projectcalico.org/namespace) (every namespaced thing) and global()
// becomes !has(projectcalico.org/namespace) (only cluster-scoped things).
func scopeNamespaceSelector(n node) node {
	n = n.mapKeys(func(k string) string { return NamespaceLabelPrefix + k })
	return replaceScopes(n)
}

func replaceScopes(n node) node {
	switch x := n.(type) {
	case allNode:
		return hasNode{key: NamespaceLabel}
	case globalNode:
		return &notNode{op: hasNode{key: NamespaceLabel}}
	case *notNode:
		return negate(replaceScopes(x.op))
	case *andNode:
		ops := make([]node, len(x.ops))
		for i, op := range x.ops {
			ops[i] = replaceScopes(op)
		}
		return &andNode{ops: ops}
	case *orNode:
		ops := make([]node, len(x.ops))
		for i, op := range x.ops {
			ops[i] = replaceScopes(op)
		}
		return &orNode{ops: ops}
	}
	return n
}

// root is the syntax tree of s, or nil for an absent selector.
func root(s *Selector) node {
	if s == nil {
		return nil
	}
	return s.root
}

// EntityRuleSelectors composes a rule's source or destination selectors
// with the policy's namespace, as libcalico-go does:
//
//   - N, the namespace part: the namespaceSelector scoped as above if set;
//     otherwise, in a namespaced policy, projectcalico.org/namespace == '<ns>';
//     otherwise (global policy or profile) nothing.
//   - If N is set and any of selector, notSelector or namespaceSelector is
//     set, the positive selector is (N) && (selector), or N alone when the
//     rule has no selector. Otherwise it is the selector, if any.
//   - notSelector is returned unscoped: it excludes matching endpoints of
//     every namespace.
//
// positive is nil when the rule places no selector constraint on the peer;
// negative is nil without a notSelector; absent inputs are nil. A
// namespaceSelector of all() with a selector reaches matching endpoints of
// every namespace, which for OpenStack means every region.
func EntityRuleSelectors(sel, namespaceSel, notSel *Selector, policyNamespace string) (positive, negative *Selector) {
	s, nsSel, notS := root(sel), root(namespaceSel), root(notSel)

	var ns node
	switch {
	case nsSel != nil:
		ns = scopeNamespaceSelector(nsSel)
	case policyNamespace != "":
		ns = namespaceIs(policyNamespace)
	}

	var pos node
	switch {
	case ns != nil && (s != nil || notS != nil || nsSel != nil):
		if s != nil {
			pos = &andNode{ops: []node{ns, s}}
		} else {
			pos = ns
		}
	case s != nil:
		pos = s
	}
	if pos != nil {
		positive = newSelector(pos)
	}
	if notSel != nil {
		negative = notSel
	}
	return positive, negative
}

// PolicySelector composes a policy's endpoint selector with its scope: a
// namespaced NetworkPolicy selects only endpoints of its own namespace,
// "(selector) && projectcalico.org/namespace == '<ns>'"; a
// GlobalNetworkPolicy with a namespaceSelector ANDs the scoped
// namespaceSelector on. An empty selector selects everything in scope.
func PolicySelector(sel, namespaceSel *Selector, policyNamespace string) *Selector {
	var scope node
	if policyNamespace != "" {
		scope = namespaceIs(policyNamespace)
	} else if namespaceSel != nil {
		scope = scopeNamespaceSelector(namespaceSel.root)
	}
	switch {
	case scope == nil && sel == nil:
		return All
	case scope == nil:
		return sel
	case sel == nil:
		return newSelector(scope)
	}
	return newSelector(&andNode{ops: []node{sel.root, scope}})
}

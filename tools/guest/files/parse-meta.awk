# Minimal NoCloud meta-data / #cloud-config reader (the YAML subset cloud-init users write):
#   instance-id: ID            local-hostname: NAME   (or hostname:)
#   public-keys: | ssh_authorized_keys: | public_keys:   as a block list ("  - key"),
#   a block mapping ("  name: key"), a flow list (["k1", "k2"]) or a single inline value.
# Writes instance id, hostname and keys (one per line) to the files named by -v ID= HN= KEYS=.
function trim(s) { sub(/^[ \t]+/, "", s); sub(/[ \t\r]+$/, "", s); return s }
function unq(s) {
    s = trim(s)
    if (s ~ /^".*"$/ || s ~ /^'.*'$/) s = substr(s, 2, length(s) - 2)
    return s
}
function key(k) { k = unq(k); if (k ~ /^(ssh-|ecdsa-|sk-)/) print k >> KEYS }
/^[ \t]*#/ { next }
/^[^ \t-][^:]*:/ {
    inkeys = 0
    k = $0; sub(/:.*/, "", k); k = unq(k)
    v = $0; sub(/^[^:]*:/, "", v); v = unq(v)
    if (k == "instance-id") print v > ID
    else if (k == "local-hostname" || k == "hostname") print v > HN
    else if (k == "public-keys" || k == "ssh_authorized_keys" || k == "public_keys") {
        if (v == "") inkeys = 1
        else if (v ~ /^\[/) {
            gsub(/^\[|\]$/, "", v); n = split(v, a, ","); for (i = 1; i <= n; i++) key(a[i])
        } else key(v)
    }
    next
}
inkeys && /^[ \t]+-/ { v = $0; sub(/^[ \t]+-[ \t]*/, "", v); key(v); next }
inkeys && /^[ \t]+[^ \t]/ {
    v = trim($0)
    if (v ~ /^(ssh-|ecdsa-|sk-)/) key(v)
    else { sub(/^[^:]*:/, "", v); key(v) }
    next
}

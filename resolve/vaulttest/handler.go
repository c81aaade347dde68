package vaulttest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"time"
)

// A cloud is what a vault's challenge names: the Key Vault resource and the
// Entra ID authority of the vault's sovereign cloud.
type cloud struct {
	suffix, resource, login string
}

var clouds = []cloud{
	{".vault.azure.net", "https://vault.azure.net", "https://login.microsoftonline.com"},
	{".vault.azure.cn", "https://vault.azure.cn", "https://login.chinacloudapi.cn"},
	{".vault.usgovcloudapi.net", "https://vault.usgovcloudapi.net", "https://login.microsoftonline.us"},
}

// vaultFromHost names the vault a Host header addresses and its cloud;
// isVaultHost reports whether host is a Key Vault host name.
func vaultFromHost(hostport string) (name string, c cloud, isVaultHost bool) {
	host := strings.ToLower(hostport)
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	for _, c := range clouds {
		if label, ok := strings.CutSuffix(host, c.suffix); ok && label != "" && !strings.Contains(label, ".") {
			return label, c, true
		}
	}
	return DefaultVault, clouds[0], false
}

// request is what one request is about, worked out once.
type request struct {
	*http.Request
	vaultName string
	cloud     cloud
	idHost    string   // host in ids: no port for real vault names
	segs      []string // path segments after the leading slash
}

// secretName returns the secret a GET of one secret addresses, or "".
func (r *request) secretName() string {
	if r.Method != http.MethodGet || len(r.segs) < 2 || len(r.segs) > 3 || r.segs[0] != "secrets" || r.segs[1] == "" {
		return ""
	}
	if len(r.segs) == 3 && r.segs[2] == "versions" {
		return ""
	}
	return r.segs[1]
}

// ServeHTTP answers one Key Vault request.
func (s *Server) ServeHTTP(w http.ResponseWriter, hr *http.Request) {
	name, c, isVaultHost := vaultFromHost(hr.Host)
	r := &request{Request: hr, vaultName: name, cloud: c, idHost: hr.Host,
		segs: strings.Split(strings.TrimPrefix(hr.URL.Path, "/"), "/")}
	if isVaultHost {
		r.idHost, _, _ = strings.Cut(hr.Host, ":")
	}
	e := Entry{Time: time.Now(), Method: hr.Method, Host: hr.Host, Vault: name, Path: hr.URL.Path, RawQuery: hr.URL.RawQuery}
	latency := s.begin(name)
	defer func() { s.end(e) }()
	if latency > 0 {
		t := time.NewTimer(latency)
		select {
		case <-t.C:
		case <-hr.Context().Done():
			t.Stop()
			return
		}
	}
	e.Status, e.Authorized = s.serve(w, r)
}

func (s *Server) serve(w http.ResponseWriter, r *request) (status int, authorized bool) {
	s.mu.Lock()
	v := s.vaultLocked(r.vaultName)
	tenant := s.tenantLocked(v)
	s.mu.Unlock()

	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	ok = ok && token != ""
	if !ok || (s.check != nil && !s.check(token, r.cloud.resource, tenant)) {
		return challenge(w, r.cloud, tenant, ok), false
	}

	name := r.secretName()
	s.mu.Lock()
	f := s.takeFaultLocked(r.vaultName, r.Method, name)
	var throttled bool
	var left time.Duration
	if f == nil && name != "" {
		throttled, left = s.throttledLocked(v, time.Now())
	}
	retryAfter := s.throttle.retryAfter
	s.mu.Unlock()

	switch {
	case f != nil:
		return s.fail(w, r, v, f), true
	case throttled:
		if retryAfter {
			w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds(left)))
		}
		return errorStatus(w, http.StatusTooManyRequests, name), true
	}
	return s.route(w, r, v), true
}

// challenge answers 401 the way Key Vault does, naming the authority and the
// resource a client must get a token for.
func challenge(w http.ResponseWriter, c cloud, tenant string, hadToken bool) int {
	w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer authorization="%s/%s", resource="%s"`, c.login, tenant, c.resource))
	msg := "AKV10000: Request is missing a Bearer, PoP, or MTLS_POP token."
	if hadToken {
		msg = fmt.Sprintf("AKV10022: Invalid audience or issuer: the token was not issued for %s in tenant %s.", c.resource, tenant)
	}
	return writeError(w, http.StatusUnauthorized, "Unauthorized", msg)
}

// fail serves fault f.
func (s *Server) fail(w http.ResponseWriter, r *request, v *vault, f *Fault) int {
	switch f.Mode {
	case CloseConn, ResetConn:
		hangUp(w, f.Mode == ResetConn)
		return 0
	case TruncatedJSON:
		rec := httptest.NewRecorder()
		s.route(rec, r, v)
		body := rec.Body.Bytes()
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		w.Write(body[:len(body)/2])
		return http.StatusOK
	case HTMLBody:
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, "<!DOCTYPE html>\n<html><head><title>Sign in to the network</title></head>\n<body><h1>Access to this network requires sign-in</h1></body></html>\n")
		return http.StatusOK
	}
	if f.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds(f.RetryAfter)))
	}
	return errorStatus(w, f.Status, r.secretName())
}

// hangUp drops the connection without an answer; rst makes it a reset.
func hangUp(w http.ResponseWriter, rst bool) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler) // HTTP/2: reset the stream instead
	}
	// Close the TCP connection under any TLS layer, so no close_notify is sent.
	for {
		nc, ok := conn.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		conn = nc.NetConn()
	}
	if tcp, ok := conn.(*net.TCPConn); ok && rst {
		tcp.SetLinger(0)
	}
	conn.Close()
}

func (s *Server) route(w http.ResponseWriter, r *request, v *vault) int {
	if r.URL.Query().Get("api-version") == "" {
		return writeError(w, http.StatusBadRequest, "BadParameter", "The api-version query parameter (?api-version=) is required for all requests.")
	}
	segs := r.segs
	if segs[0] != "secrets" {
		return writeError(w, http.StatusNotFound, "NotFound", "The requested resource "+r.URL.Path+" was not found.")
	}
	switch {
	case len(segs) == 1 || (len(segs) == 2 && segs[1] == ""):
		if r.Method == http.MethodGet {
			return s.listSecrets(w, r, v)
		}
	case len(segs) == 2:
		switch r.Method {
		case http.MethodGet:
			return s.get(w, r, v, segs[1], "")
		case http.MethodPut:
			return s.set(w, r, v, segs[1])
		case http.MethodPatch:
			return s.update(w, r, v, segs[1], "")
		}
	case len(segs) == 3 && segs[2] == "versions", len(segs) == 4 && segs[2] == "versions" && segs[3] == "":
		if r.Method == http.MethodGet {
			return s.listVersions(w, r, v, segs[1])
		}
	case len(segs) == 3:
		switch r.Method {
		case http.MethodGet:
			return s.get(w, r, v, segs[1], segs[2])
		case http.MethodPatch:
			return s.update(w, r, v, segs[1], segs[2])
		}
	default:
		return writeError(w, http.StatusNotFound, "NotFound", "The requested resource "+r.URL.Path+" was not found.")
	}
	return writeError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "The method "+r.Method+" is not allowed for "+r.URL.Path+".")
}

func (s *Server) get(w http.ResponseWriter, r *request, v *vault, name, version string) int {
	if !validName.MatchString(name) {
		return badName(w, name)
	}
	s.mu.Lock()
	ver := s.findLocked(v, name, version)
	found := ver != nil
	enabled := found && ver.Enabled
	var b bundle
	if enabled {
		b = newBundle(r.idHost, ver, true, true)
	}
	s.mu.Unlock()
	switch {
	case !found:
		return secretNotFound(w, strings.TrimSuffix(name+"/"+version, "/"))
	case !enabled:
		return writeError(w, http.StatusForbidden, "Forbidden", "Operation get is not allowed on a disabled secret.")
	}
	return writeJSON(w, http.StatusOK, b)
}

// setParams is the body of SetSecret and UpdateSecretProperties.
type setParams struct {
	Value       *string           `json:"value"`
	ContentType *string           `json:"contentType"`
	Attributes  *attributes       `json:"attributes"`
	Tags        map[string]string `json:"tags"`
}

func (p *setParams) apply(ver *SecretVersion) {
	if p.ContentType != nil {
		ver.ContentType = *p.ContentType
	}
	if p.Tags != nil {
		ver.Tags = p.Tags
	}
	if a := p.Attributes; a != nil {
		if a.Enabled != nil {
			ver.Enabled = *a.Enabled
		}
		if a.NotBefore != nil {
			ver.NotBefore = time.Unix(*a.NotBefore, 0)
		}
		if a.Expires != nil {
			ver.Expires = time.Unix(*a.Expires, 0)
		}
	}
}

func readParams(w http.ResponseWriter, r *request) (*setParams, int) {
	var p setParams
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err == nil {
		err = json.Unmarshal(body, &p)
	}
	if err != nil {
		return nil, writeError(w, http.StatusBadRequest, "BadParameter", "The request body is not valid JSON.")
	}
	if p.ContentType != nil && len(*p.ContentType) > 255 {
		return nil, writeError(w, http.StatusBadRequest, "BadParameter", "Property contentType must be at most 255 characters.")
	}
	return &p, 0
}

func (s *Server) set(w http.ResponseWriter, r *request, v *vault, name string) int {
	if !validName.MatchString(name) {
		return badName(w, name)
	}
	p, status := readParams(w, r)
	switch {
	case p == nil:
		return status
	case p.Value == nil:
		return writeError(w, http.StatusBadRequest, "BadParameter", "Property value is required.")
	case len(*p.Value) > MaxValueBytes:
		return writeError(w, http.StatusBadRequest, "BadParameter", fmt.Sprintf("Secret value is too large: it must be at most %d bytes.", MaxValueBytes))
	}
	now := time.Now().Truncate(time.Second)
	ver := &SecretVersion{Name: name, Version: newVersion(), Value: *p.Value, Enabled: true, Created: now, Updated: now}
	p.apply(ver)
	s.mu.Lock()
	s.addLocked(v, ver)
	b := newBundle(r.idHost, ver, true, true)
	s.mu.Unlock()
	return writeJSON(w, http.StatusOK, b)
}

func (s *Server) update(w http.ResponseWriter, r *request, v *vault, name, version string) int {
	if !validName.MatchString(name) {
		return badName(w, name)
	}
	p, status := readParams(w, r)
	if p == nil {
		return status
	}
	s.mu.Lock()
	ver := s.findLocked(v, name, version)
	var b bundle
	if ver != nil {
		p.apply(ver)
		ver.Updated = time.Now().Truncate(time.Second)
		b = newBundle(r.idHost, ver, true, false)
	}
	s.mu.Unlock()
	if ver == nil {
		return secretNotFound(w, strings.TrimSuffix(name+"/"+version, "/"))
	}
	return writeJSON(w, http.StatusOK, b)
}

func (s *Server) listSecrets(w http.ResponseWriter, r *request, v *vault) int {
	s.mu.Lock()
	items := make([]bundle, 0, len(v.secrets))
	for _, sec := range v.secrets {
		items = append(items, newBundle(r.idHost, sec.versions[len(sec.versions)-1], false, false))
	}
	pageSize := s.pageSize
	s.mu.Unlock()
	slices.SortFunc(items, func(a, b bundle) int { return strings.Compare(strings.ToLower(a.ID), strings.ToLower(b.ID)) })
	return page(w, r, items, pageSize)
}

func (s *Server) listVersions(w http.ResponseWriter, r *request, v *vault, name string) int {
	if !validName.MatchString(name) {
		return badName(w, name)
	}
	s.mu.Lock()
	var items []bundle
	if sec := v.secrets[strings.ToLower(name)]; sec != nil {
		for _, ver := range sec.versions {
			items = append(items, newBundle(r.idHost, ver, true, false))
		}
	}
	pageSize := s.pageSize
	s.mu.Unlock()
	return page(w, r, items, pageSize)
}

// page serves one page of a listing. The skip token is the offset; nextLink
// is absolute and carries a port, as Key Vault's does.
func page(w http.ResponseWriter, r *request, items []bundle, pageSize int) int {
	q := r.URL.Query()
	if m := q.Get("maxresults"); m != "" {
		n, err := strconv.Atoi(m)
		if err != nil || n < 1 || n > DefaultPageSize {
			return writeError(w, http.StatusBadRequest, "BadParameter", fmt.Sprintf("The value of maxresults must be between 1 and %d.", DefaultPageSize))
		}
		pageSize = n
	}
	offset := 0
	if t := q.Get("$skiptoken"); t != "" {
		raw, err := base64.RawURLEncoding.DecodeString(t)
		if err == nil {
			offset, err = strconv.Atoi(string(raw))
		}
		if err != nil || offset < 0 {
			return writeError(w, http.StatusBadRequest, "BadParameter", "The skip token is invalid.")
		}
	}
	offset = min(offset, len(items))
	end := min(offset+max(pageSize, 1), len(items))
	res := listResult{Value: items[offset:end]}
	if end < len(items) {
		host := r.Host
		if _, _, err := net.SplitHostPort(host); err != nil {
			host += ":443"
		}
		next := fmt.Sprintf("https://%s%s?api-version=%s&$skiptoken=%s", host, r.URL.Path, q.Get("api-version"),
			base64.RawURLEncoding.EncodeToString([]byte(strconv.Itoa(end))))
		if m := q.Get("maxresults"); m != "" {
			next += "&maxresults=" + m
		}
		res.NextLink = &next
	}
	return writeJSON(w, http.StatusOK, res)
}

// Wire shapes, as azsecrets v1.5.1 models_serde.go reads them: times are
// Unix seconds, nextLink is null on the last page.

type attributes struct {
	Enabled         *bool  `json:"enabled,omitempty"`
	NotBefore       *int64 `json:"nbf,omitempty"`
	Expires         *int64 `json:"exp,omitempty"`
	Created         *int64 `json:"created,omitempty"`
	Updated         *int64 `json:"updated,omitempty"`
	RecoveryLevel   string `json:"recoveryLevel,omitempty"`
	RecoverableDays *int   `json:"recoverableDays,omitempty"`
}

type bundle struct {
	Value       *string           `json:"value,omitempty"`
	ID          string            `json:"id"`
	ContentType string            `json:"contentType,omitempty"`
	Attributes  attributes        `json:"attributes"`
	Tags        map[string]string `json:"tags,omitempty"`
}

type listResult struct {
	Value    []bundle `json:"value"`
	NextLink *string  `json:"nextLink"`
}

func newBundle(host string, ver *SecretVersion, withVersion, withValue bool) bundle {
	unix := func(t time.Time) *int64 {
		if t.IsZero() {
			return nil
		}
		u := t.Unix()
		return &u
	}
	enabled, days := ver.Enabled, 90
	b := bundle{
		ID:          "https://" + host + "/secrets/" + ver.Name,
		ContentType: ver.ContentType,
		Attributes: attributes{
			Enabled:         &enabled,
			NotBefore:       unix(ver.NotBefore),
			Expires:         unix(ver.Expires),
			Created:         unix(ver.Created),
			Updated:         unix(ver.Updated),
			RecoveryLevel:   "Recoverable+Purgeable",
			RecoverableDays: &days,
		},
		Tags: ver.Tags,
	}
	if withVersion {
		b.ID += "/" + ver.Version
	}
	if withValue {
		value := ver.Value
		b.Value = &value
	}
	return b
}

type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func writeJSON(w http.ResponseWriter, status int, v any) int {
	body, err := json.Marshal(v)
	if err != nil {
		panic(err) // only our own types are marshalled
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("x-ms-request-id", requestID())
	w.WriteHeader(status)
	w.Write(body)
	return status
}

func writeError(w http.ResponseWriter, status int, code, message string) int {
	var b errorBody
	b.Error.Code, b.Error.Message = code, message
	return writeJSON(w, status, b)
}

func secretNotFound(w http.ResponseWriter, nameOrID string) int {
	return writeError(w, http.StatusNotFound, "SecretNotFound", "A secret with (name/id) "+nameOrID+
		" was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182")
}

func badName(w http.ResponseWriter, name string) int {
	return writeError(w, http.StatusBadRequest, "BadParameter", "The secret name '"+name+
		"' is invalid: a secret name must be 1-127 characters of 0-9, a-z, A-Z and -.")
}

// errorStatus answers status with the body Key Vault sends for it.
func errorStatus(w http.ResponseWriter, status int, name string) int {
	switch status {
	case http.StatusTooManyRequests:
		return writeError(w, status, "Throttled", "Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached")
	case http.StatusForbidden:
		return writeError(w, status, "Forbidden", "Caller is not authorized to perform action on resource.\r\n"+
			"If role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\n"+
			"Action: 'Microsoft.KeyVault/vaults/secrets/getSecret/action'\r\nAssignment: (not found)\r\nDecisionReason: 'DeniedWithNoValidRBAC'\r\n")
	case http.StatusNotFound:
		if name != "" {
			return secretNotFound(w, name)
		}
	case http.StatusInternalServerError:
		return writeError(w, status, "InternalServerError", "An unexpected error occurred while processing the request. Please try again.")
	case http.StatusServiceUnavailable:
		return writeError(w, status, "ServiceUnavailable", "The service is currently unavailable. Please try again later.")
	}
	return writeError(w, status, strings.ReplaceAll(http.StatusText(status), " ", ""), http.StatusText(status)+".")
}

func requestID() string {
	b := randomBytes(16)
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

package rest

import "net/http"

// RouteSpec is one route of a handler's table, for tests that must cover every
// route (authz_matrix_test.go).
type RouteSpec struct {
	Method, Path string
	Public       bool
}

// RouteTable lists the routes of a handler made by NewHandler.
func RouteTable(h http.Handler) []RouteSpec {
	var out []RouteSpec
	for _, rt := range h.(served).routes {
		out = append(out, RouteSpec{Method: rt.method, Path: rt.path, Public: rt.public})
	}
	return out
}

// MatchRoute names the route of h's table that serves method and target (a
// path without /api/v*), "METHOD /path" as the table has it, "" for none.
func MatchRoute(h http.Handler, method, target string) (string, error) {
	r, err := http.NewRequest(method, target, nil)
	if err != nil {
		return "", err
	}
	return h.(served).match(r), nil
}

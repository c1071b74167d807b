// Command argocd-lua evaluates an Argo CD resource health check (Lua) on sample objects the
// way Argo CD's controller does (util/lua in argoproj/argo-cd): gopher-lua with the standard
// libraries skipped, then only package, base, table and a safe os opened (what a health
// script from argocd-cm gets unless it sets useOpenLibs), the object as the global `obj`,
// a one-second limit, and the returned table read as {status, message}, where an unknown
// status becomes Unknown.
//
// Usage: argocd-lua [-open-libs] health.lua < objects.json
// stdin: a JSON array of objects; stdout: a JSON array with, per object, either
// {"status": ..., "message": ...} or {"error": ...}.
//
// Built by test/envtest/build-tools.sh into .tools/; used by docs/argocd tests.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	lua "github.com/yuin/gopher-lua"
	luajson "layeh.com/gopher-json"
)

type result struct {
	Status  string `json:"status,omitempty"`
	Message string `json:"message,omitempty"`
	Error   string `json:"error,omitempty"`
}

var validStatus = map[string]bool{
	"Healthy": true, "Progressing": true, "Degraded": true, "Suspended": true, "Missing": true, "Unknown": true,
}

func main() {
	openLibs := flag.Bool("open-libs", false, "open all standard libraries (Argo CD's useOpenLibs)")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: argocd-lua [-open-libs] health.lua < objects.json")
		os.Exit(2)
	}
	script, err := os.ReadFile(flag.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var objects []map[string]interface{}
	if err := json.NewDecoder(os.Stdin).Decode(&objects); err != nil {
		fmt.Fprintln(os.Stderr, "stdin must be a JSON array of objects:", err)
		os.Exit(2)
	}
	out := make([]result, 0, len(objects))
	for _, obj := range objects {
		out = append(out, health(obj, string(script), *openLibs))
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func health(obj map[string]interface{}, script string, openLibs bool) result {
	l := lua.NewState(lua.Options{SkipOpenLibs: !openLibs})
	defer l.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
		{lua.OsLibName, openSafeOs},
	} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.open), NRet: 0, Protect: true}, lua.LString(lib.name)); err != nil {
			return result{Error: err.Error()}
		}
	}
	l.PreloadModule(lua.OsLibName, safeOsLoader)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", decode(l, obj))
	if err := l.DoString(script); err != nil {
		return result{Error: err.Error()}
	}
	ret := l.Get(-1)
	if ret.Type() != lua.LTTable {
		return result{Error: fmt.Sprintf("expect table output from Lua script, not %s", ret.Type())}
	}
	raw, err := luajson.Encode(ret)
	if err != nil {
		return result{Error: err.Error()}
	}
	var r result
	if err := json.Unmarshal(raw, &r); err != nil {
		return result{Error: err.Error()}
	}
	if !validStatus[r.Status] {
		return result{Status: "Unknown", Message: "Lua returned an invalid health status"}
	}
	return r
}

// decode turns a JSON value into Lua values the way Argo CD hands `obj` to a script.
func decode(l *lua.LState, v interface{}) lua.LValue {
	switch x := v.(type) {
	case bool:
		return lua.LBool(x)
	case float64:
		return lua.LNumber(x)
	case string:
		return lua.LString(x)
	case []interface{}:
		t := l.CreateTable(len(x), 0)
		for _, item := range x {
			t.Append(decode(l, item))
		}
		return t
	case map[string]interface{}:
		t := l.CreateTable(0, len(x))
		for k, item := range x {
			t.RawSetH(lua.LString(k), decode(l, item))
		}
		return t
	}
	return lua.LNil
}

// A reduced os library without process, file or environment access.
var safeOs = map[string]lua.LGFunction{
	"time": func(l *lua.LState) int {
		l.Push(lua.LNumber(time.Now().Unix()))
		return 1
	},
	"clock": func(l *lua.LState) int {
		l.Push(lua.LNumber(float64(time.Now().UnixNano()) / 1e9))
		return 1
	},
	"difftime": func(l *lua.LState) int {
		l.Push(lua.LNumber(l.CheckNumber(1) - l.CheckNumber(2)))
		return 1
	},
}

func openSafeOs(l *lua.LState) int {
	mod := l.RegisterModule(lua.OsLibName, safeOs)
	l.Push(mod)
	return 1
}

func safeOsLoader(l *lua.LState) int {
	l.Push(l.SetFuncs(l.NewTable(), safeOs))
	return 1
}

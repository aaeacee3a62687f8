package bench

import (
	"encoding"
	"fmt"
	"reflect"
	"strconv"
	"strings"
)

// WorkloadField describes one key of the workload format, for flags and `-set key=value`.
type WorkloadField struct {
	Key  string // as in workload files: record_size
	Flag string // as a flag: record-size
	Help string
}

// WorkloadFields lists the workload's keys in file order.
func WorkloadFields() []WorkloadField {
	t := reflect.TypeFor[Workload]()
	var fs []WorkloadField
	for i := range t.NumField() {
		f := t.Field(i)
		key := yamlKey(f)
		fs = append(fs, WorkloadField{Key: key, Flag: strings.ReplaceAll(key, "_", "-"), Help: f.Tag.Get("help")})
	}
	return fs
}

func yamlKey(f reflect.StructField) string {
	key, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	return key
}

// Get returns a key's value in its text form (as Set takes it).
func (w *Workload) Get(key string) (string, error) {
	v, err := w.field(key)
	if err != nil {
		return "", err
	}
	if m, ok := v.Interface().(encoding.TextMarshaler); ok {
		b, err := m.MarshalText()
		return string(b), err
	}
	if v.Kind() == reflect.Map {
		var parts []string
		for _, k := range v.MapKeys() {
			parts = append(parts, k.String()+"="+v.MapIndex(k).String())
		}
		return strings.Join(parts, ","), nil
	}
	return fmt.Sprint(v.Interface()), nil
}

// Set sets one key (file or flag spelling) from its text form.
func (w *Workload) Set(key, value string) error {
	v, err := w.field(key)
	if err != nil {
		return err
	}
	if u, ok := v.Addr().Interface().(encoding.TextUnmarshaler); ok {
		return u.UnmarshalText([]byte(value))
	}
	bad := func(err error) error { return fmt.Errorf("workload key %s: bad value %q: %w", key, value, err) }
	switch v.Kind() {
	case reflect.String:
		v.SetString(value)
	case reflect.Bool:
		b, err := strconv.ParseBool(value)
		if err != nil {
			return bad(err)
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(strings.ReplaceAll(value, "_", ""), 10, v.Type().Bits())
		if err != nil {
			return bad(err)
		}
		v.SetInt(n)
	case reflect.Float64:
		f, err := strconv.ParseFloat(strings.ReplaceAll(value, "_", ""), 64)
		if err != nil {
			return bad(err)
		}
		v.SetFloat(f)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		for kv := range strings.SplitSeq(value, ",") {
			if kv == "" {
				continue
			}
			k, val, ok := strings.Cut(kv, "=")
			if !ok {
				return bad(fmt.Errorf("want k=v,k=v"))
			}
			m.SetMapIndex(reflect.ValueOf(strings.TrimSpace(k)), reflect.ValueOf(strings.TrimSpace(val)))
		}
		v.Set(m)
	default:
		panic("BUG: workload field of kind " + v.Kind().String())
	}
	return nil
}

func (w *Workload) field(key string) (reflect.Value, error) {
	key = strings.ReplaceAll(key, "-", "_")
	v := reflect.ValueOf(w).Elem()
	for i := range v.NumField() {
		if yamlKey(v.Type().Field(i)) == key {
			return v.Field(i), nil
		}
	}
	return reflect.Value{}, fmt.Errorf("no workload key %q", key)
}

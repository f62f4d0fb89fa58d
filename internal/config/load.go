package config

import (
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/env"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/providers/structs"
	"github.com/knadh/koanf/v2"
)

// EnvPrefix starts every environment variable walhook reads.
const EnvPrefix = "WALHOOK_"

// ConfigEnv names the config file when --config is not given.
const ConfigEnv = "WALHOOK_CONFIG"

// TestEnvPrefix starts the environment variables of walhook's own tests
// (WALHOOK_TEST_REQUIRE_BROWSER, ...): they are not configuration, and a
// test run exporting them must not make every configuration load fail.
const TestEnvPrefix = "WALHOOK_TEST_"

// Load builds the configuration from the defaults, the YAML file at path
// (skipped when path is empty) and the WALHOOK_* environment, then validates it.
func Load(path string) (*Config, error) {
	defaults := Defaults()
	k := koanf.New(".")
	if err := k.Load(structs.Provider(defaults, "koanf"), nil); err != nil {
		return nil, fmt.Errorf("load defaults: %w", err)
	}
	known := map[string]bool{}
	for _, key := range k.Keys() {
		known[key] = true
	}

	if path != "" {
		fk := koanf.New(".")
		if err := fk.Load(file.Provider(path), yaml.Parser()); err != nil {
			return nil, fmt.Errorf("read config %s: %w", path, err)
		}
		var unknown []string
		for _, key := range fk.Keys() {
			if !known[key] {
				unknown = append(unknown, key)
			}
		}
		if len(unknown) > 0 {
			sort.Strings(unknown)
			return nil, fmt.Errorf("config %s: unknown key %s (see config/walhook.yaml for every key)", path, strings.Join(unknown, ", "))
		}
		if err := k.Merge(fk); err != nil {
			return nil, fmt.Errorf("config %s: %w", path, err)
		}
	}

	envKeys := map[string]string{}
	for key := range known {
		envKeys[EnvName(key)] = key
	}
	var unknownEnv []string
	err := k.Load(env.ProviderWithValue(EnvPrefix, ".", func(name, value string) (string, any) {
		key, ok := envKeys[name]
		if name == ConfigEnv || strings.HasPrefix(name, TestEnvPrefix) {
			return "", nil
		}
		if !ok {
			unknownEnv = append(unknownEnv, name)
			return "", nil
		}
		if reflect.ValueOf(k.Get(key)).Kind() == reflect.Slice {
			parts := []string{}
			for _, p := range strings.Split(value, ",") {
				if p = strings.TrimSpace(p); p != "" {
					parts = append(parts, p)
				}
			}
			return key, parts
		}
		return key, value
	}), nil)
	if err != nil {
		return nil, fmt.Errorf("read environment: %w", err)
	}
	if len(unknownEnv) > 0 {
		sort.Strings(unknownEnv)
		return nil, fmt.Errorf("unknown environment variable %s (see config/walhook.yaml for every key)", strings.Join(unknownEnv, ", "))
	}

	var cfg Config
	for _, key := range k.Keys() {
		if err := decodeKey(k, key); err != nil {
			return nil, err
		}
	}
	if err := k.UnmarshalWithConf("", &cfg, koanf.UnmarshalConf{Tag: "koanf", DecoderConfig: decoderConfig(&cfg)}); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// decodeKey decodes one key alone into a fresh Config, so that a bad value is
// reported with the key's own name rather than a Go field path.
func decodeKey(k *koanf.Koanf, key string) error {
	var probe Config
	sub := koanf.New(".")
	if err := sub.Set(key, k.Get(key)); err != nil {
		return &FieldError{Key: key, Message: err.Error()}
	}
	if err := sub.UnmarshalWithConf("", &probe, koanf.UnmarshalConf{Tag: "koanf", DecoderConfig: decoderConfig(&probe)}); err != nil {
		// mapstructure's message ends with "'<key>' <reason>"; keep the reason.
		msg := err.Error()
		if i := strings.LastIndex(msg, "' "); i >= 0 {
			msg = msg[i+2:]
		}
		return &FieldError{Key: key, Message: fmt.Sprintf("bad value %q: %s", fmt.Sprint(k.Get(key)), msg)}
	}
	return nil
}

func decoderConfig(out *Config) *mapstructure.DecoderConfig {
	return &mapstructure.DecoderConfig{
		DecodeHook: mapstructure.ComposeDecodeHookFunc(
			mapstructure.StringToTimeDurationHookFunc(),
			mapstructure.StringToSliceHookFunc(","),
			mapstructure.TextUnmarshallerHookFunc(),
		),
		Result:           out,
		WeaklyTypedInput: true,
		TagName:          "koanf",
	}
}

// EnvName is the environment variable that sets key.
func EnvName(key string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// Keys lists every configuration key, sorted.
func Keys() []string {
	k := koanf.New(".")
	_ = k.Load(structs.Provider(Defaults(), "koanf"), nil)
	return k.Keys()
}

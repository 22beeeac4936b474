package conf

import (
	"fmt"
	"math/big"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// attrState says what evaluating an attribute found.
type attrState uint8

const (
	attrAbsent attrState = iota // not written, or written as null
	attrOK                      // present and of the right type
	attrBad                     // present but wrong; already diagnosed
)

// String returns the state's name.
func (s attrState) String() string {
	switch s {
	case attrAbsent:
		return "absent"
	case attrOK:
		return "ok"
	case attrBad:
		return "bad"
	}
	return fmt.Sprintf("attrState(%d)", uint8(s))
}

// checker accumulates diagnostics while a file is resolved.
type checker struct {
	diags hcl.Diagnostics
}

// errorf records an error diagnostic at subject.
func (c *checker) errorf(subject hcl.Range, summary, format string, args ...any) {
	c.diags = append(c.diags, &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  summary,
		Detail:   fmt.Sprintf(format, args...),
		Subject:  subject.Ptr(),
	})
}

// warnf records a warning diagnostic at subject.
func (c *checker) warnf(subject hcl.Range, summary, format string, args ...any) {
	c.diags = append(c.diags, &hcl.Diagnostic{
		Severity: hcl.DiagWarning,
		Summary:  summary,
		Detail:   fmt.Sprintf(format, args...),
		Subject:  subject.Ptr(),
	})
}

// value evaluates expr as a constant (no variables, no functions) and
// converts it to ty. name is the attribute name for messages and what
// describes the expected type ("a string").
func (c *checker) value(expr hcl.Expression, name string, ty cty.Type, what string) (cty.Value, attrState) {
	if expr == nil {
		return cty.NilVal, attrAbsent
	}
	if !c.constant(expr) {
		return cty.NilVal, attrBad
	}
	v, diags := expr.Value(nil)
	c.diags = append(c.diags, diags...)
	if diags.HasErrors() {
		return cty.NilVal, attrBad
	}
	if v.IsNull() {
		return cty.NilVal, attrAbsent
	}
	if !v.IsWhollyKnown() {
		c.errorf(expr.Range(), "Invalid "+name, "%s must be a constant value.", name)
		return cty.NilVal, attrBad
	}
	cv, err := convert.Convert(v, ty)
	if err != nil || cv.IsNull() || !cv.IsWhollyKnown() {
		c.errorf(expr.Range(), "Invalid "+name, "%s must be %s; it is %s.", name, what, v.Type().FriendlyName())
		return cty.NilVal, attrBad
	}
	return cv, attrOK
}

// str evaluates a string attribute.
func (c *checker) str(expr hcl.Expression, name string) (string, attrState) {
	v, st := c.value(expr, name, cty.String, "a string")
	if st != attrOK {
		return "", st
	}
	return v.AsString(), attrOK
}

// boolean evaluates a bool attribute.
func (c *checker) boolean(expr hcl.Expression, name string) (bool, attrState) {
	v, st := c.value(expr, name, cty.Bool, "true or false")
	if st != attrOK {
		return false, st
	}
	return v.True(), attrOK
}

// integer evaluates a whole-number attribute in [lo, hi].
func (c *checker) integer(expr hcl.Expression, name string, lo, hi int64) (int64, attrState) {
	what := fmt.Sprintf("a whole number from %d to %d", lo, hi)
	v, st := c.value(expr, name, cty.Number, what)
	if st != attrOK {
		return 0, st
	}
	bf := v.AsBigFloat()
	if !bf.IsInt() || bf.Cmp(big.NewFloat(float64(lo))) < 0 || bf.Cmp(big.NewFloat(float64(hi))) > 0 {
		c.errorf(expr.Range(), "Invalid "+name, "%s must be %s; it is %s.", name, what, bf.Text('g', 20))
		return 0, attrBad
	}
	n, _ := bf.Int64()
	return n, attrOK
}

// present reports whether expr is written and not null, without
// diagnosing anything (used to decide which error to report).
func present(expr hcl.Expression) bool {
	if expr == nil {
		return false
	}
	v, diags := expr.Value(nil)
	return diags.HasErrors() || !v.IsNull()
}

// maxNumberExp bounds the binary exponent of number literals (about 1e77):
// converting or printing a number like 1e99999999 takes minutes, and no
// setting needs one.
const maxNumberExp = 256

// constant reports whether expr is made only of constant literals: strings
// without interpolation, numbers of sane magnitude, bools, null, lists of
// those, parentheses and unary minus or not. Anything else is diagnosed.
// Variables and function calls pass, so that evaluation reports them with
// HCL's usual messages.
func (c *checker) constant(expr hcl.Expression) bool {
	switch e := expr.(type) {
	case *hclsyntax.LiteralValueExpr:
		if e.Val.Type() == cty.Number && !e.Val.IsNull() && e.Val.IsKnown() {
			bf := e.Val.AsBigFloat()
			if exp := bf.MantExp(nil); bf.Sign() != 0 && (exp > maxNumberExp || exp < -maxNumberExp) {
				c.errorf(e.Range(), "Number out of range", "This number's magnitude is far outside anything a setting accepts; write a smaller number.")
				return false
			}
		}
		return true
	case *hclsyntax.TemplateExpr:
		for _, part := range e.Parts {
			if lit, ok := part.(*hclsyntax.LiteralValueExpr); !ok || lit.Val.Type() != cty.String {
				c.errorf(part.Range(), "Template not allowed", `Strings are literal here: no ${...} interpolation or %%{...} directives. Write the value itself, and "$${" or "%%%%{" for a literal "${" or "%%{".`)
				return false
			}
		}
		return true
	case *hclsyntax.TemplateWrapExpr:
		c.errorf(e.Range(), "Template not allowed", `Strings are literal here: no ${...} interpolation. Write the value itself.`)
		return false
	case *hclsyntax.TupleConsExpr:
		for _, elem := range e.Exprs {
			if !c.constant(elem) {
				return false
			}
		}
		return true
	case *hclsyntax.ParenthesesExpr:
		return c.constant(e.Expression)
	case *hclsyntax.UnaryOpExpr:
		return c.constant(e.Val)
	case *hclsyntax.ScopeTraversalExpr, *hclsyntax.FunctionCallExpr:
		return true
	case nil:
		return true
	}
	if _, ok := expr.(hclsyntax.Expression); ok {
		c.errorf(expr.Range(), "Unsupported expression", "Only constant values are allowed here: strings, numbers, true or false, and lists of them; no operators, conditionals or expressions.")
		return false
	}
	return true // static expressions and other syntaxes evaluate safely
}
